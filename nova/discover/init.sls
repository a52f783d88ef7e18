{#- Cells v2: map compute hosts that registered but have no host mapping
    (only when one is missing), after waiting, with bounded retries, for the
    computes the orchestrate expects. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('discover', {}) %}

include:
  - {{ tplroot }}.validate
{%- for sls in nova.plan.needs.get('discover', []) %}
  - {{ sls }}
{%- endfor %}
{%- for state in plan.get('hosts', []) %}

{{ state.id }}:
  nova_manage.hosts_discovered:
    {{- args(state) }}
{%- endfor %}
