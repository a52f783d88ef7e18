{#- nova.orch.upgrade: compute hosts disabled while they update, enabled
    after (nova:upgrade:disable / enable), through the Compute API on the
    identity minion (_utils/nova_plan.py upgrade()). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('upgrade', {}) %}

include:
  - {{ tplroot }}.validate
{%- for state in plan.get('disable', []) %}

{{ state.id }}:
  openstack_compute.service_disabled:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('enable', []) %}

{{ state.id }}:
  openstack_compute.service_enabled:
    {{- args(state) }}
{%- endfor %}
