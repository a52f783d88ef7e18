{#- nova.clean: the packages of the roles and what they pulled in for Nova,
    released from a nova:version hold, then purged (config files
    included). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.clean.get('packages', {}) %}

include:
  - {{ tplroot }}.validate
{%- for state in plan.get('unheld', []) %}

{{ state.id }}:
  pkg.unheld:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('purged', []) %}

{{ state.id }}:
  pkg.purged:
    {{- args(state) }}
{%- endfor %}
