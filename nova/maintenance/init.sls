{#- nova.orch.maintenance, on the identity minion (admin credentials):
    each host of nova:maintenance:hosts drained (disabled, every server moved
    away) or enabled, as nova:maintenance:action says. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('day2', {}) %}

include:
  - {{ tplroot }}.validate
{%- for state in plan.get('drained', []) %}

{{ state.id }}:
  openstack_compute.host_drained:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('enabled', []) %}

{{ state.id }}:
  openstack_compute.service_enabled:
    {{- args(state) }}
{%- endfor %}
