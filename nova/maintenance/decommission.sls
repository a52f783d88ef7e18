{#- nova.orch.remove_compute, once nova-compute is stopped there: each host
    of nova:maintenance:hosts decommissioned (service record, host mapping,
    Placement providers), retried while Nova still reports it up. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('day2', {}) %}

include:
  - {{ tplroot }}.validate
{%- for state in plan.get('decommission', []) %}

{{ state.id }}:
  openstack_compute.host_decommissioned:
    {{- args(state) }}
{%- endfor %}
