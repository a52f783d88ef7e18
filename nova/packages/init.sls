{#- 8.2.1: the packages of this minion's roles; on Debian no daemon starts
    while they install (a policy-rc.d held only during the install). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('packages', {}) %}

include:
  - {{ tplroot }}.validate
{%- for sls in nova.plan.needs.get('packages', []) %}
  - {{ sls }}
{%- endfor %}
{%- for state in plan.get('hold', []) %}

{{ state.id }}:
  file.managed:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('installed', []) %}

{{ state.id }}:
  pkg.installed:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('latest', []) %}

{{ state.id }}:
  pkg.latest:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('release', []) %}

{{ state.id }}:
  file.absent:
    {{- args(state) }}
{%- endfor %}
