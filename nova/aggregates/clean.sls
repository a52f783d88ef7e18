{#- nova.clean with nova:clean:data: the pillar's aggregates removed (their
    hosts taken out first), before the Compute API's services stop. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.clean.get('aggregates', {}) %}

include:
  - {{ tplroot }}.validate
{%- for state in plan.get('absent', []) %}

{{ state.id }}:
  openstack_compute.aggregate_absent:
    {{- args(state) }}
{%- endfor %}
