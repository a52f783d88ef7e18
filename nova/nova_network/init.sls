{#- 8.2.12.1: with OpenStack Networking, nova-network must not run: stop,
    disable and remove it (legacy releases; current Nova has no nova-network). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('nova_network', {}) %}

include:
  - {{ tplroot }}.validate
{%- for sls in nova.plan.needs.get('nova_network', []) %}
  - {{ sls }}
{%- endfor %}
{%- for state in plan.get('dead', []) %}

{{ state.id }}:
  service.dead:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('removed', []) %}

{{ state.id }}:
  pkg.removed:
    {{- args(state) }}
{%- endfor %}
