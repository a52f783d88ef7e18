{#- nova.orch.remove_compute, first step, on the identity minion: each host
    of nova:maintenance:hosts drained (a host whose service is gone already
    has nothing to drain). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('day2', {}) %}

include:
  - {{ tplroot }}.validate
{%- for state in plan.get('removing', []) %}

{{ state.id }}:
  openstack_compute.host_drained:
    {{- args(state) }}
{%- endfor %}
