{#- nova.orch.upgrade's step "versions" on this minion (_utils/nova_plan.py upgrade()). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('upgrade', {}) %}

include:
  - {{ tplroot }}.validate
{%- for sls in nova.plan.needs.get('upgrade', []) %}
  - {{ sls }}
{%- endfor %}
{%- for state in plan.get('versions', []) %}

{{ state.id }}:
  nova_upgrade.services_current:
    {{- args(state) }}
{%- endfor %}
