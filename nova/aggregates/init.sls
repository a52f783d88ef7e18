{#- Host aggregates and availability zones (nova:aggregates) through the
    Compute API, once the computes are mapped: removed ones, then the hosts
    that leave an aggregate, then each aggregate as pillar says. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('aggregates', {}) %}

include:
  - {{ tplroot }}.validate
{%- for sls in nova.plan.needs.get('aggregates', []) %}
  - {{ sls }}
{%- endfor %}
{%- for state in plan.get('absent', []) %}

{{ state.id }}:
  openstack_compute.aggregate_absent:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('leavers', []) %}

{{ state.id }}:
  openstack_compute.aggregate_hosts_left:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('present', []) %}

{{ state.id }}:
  openstack_compute.aggregate_present:
    {{- args(state) }}
{%- endfor %}
