{#- nova.clean with nova:clean:data: Nova's endpoints, its catalog service and
    its service user. The project and the roles are shared with other
    services: they stay. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.clean.get('identity', {}) %}

include:
  - {{ tplroot }}.validate
{%- for state in plan.get('endpoints', []) %}

{{ state.id }}:
  openstack_keystone.endpoints_absent:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('services', []) %}

{{ state.id }}:
  openstack_keystone.service_absent:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('users', []) %}

{{ state.id }}:
  openstack_keystone.user_absent:
    {{- args(state) }}
{%- endfor %}
