{#- 8.2.4: the Keystone records of Nova, through _states/openstack_keystone.py:
    project, service user, roles and their grants, catalog service and its
    endpoints, on the nova:fleet:identity minion, with nova:identity:admin or
    :cloud credentials. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('identity', {}) %}

include:
  - {{ tplroot }}.validate
{%- for sls in nova.plan.needs.get('identity', []) %}
  - {{ sls }}
{%- endfor %}
{%- for state in plan.get('projects', []) %}

{{ state.id }}:
  openstack_keystone.project_present:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('users', []) %}

{{ state.id }}:
  openstack_keystone.user_present:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('roles', []) %}

{{ state.id }}:
  openstack_keystone.role_present:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('grants', []) %}

{{ state.id }}:
  openstack_keystone.role_grant_present:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('services', []) %}

{{ state.id }}:
  openstack_keystone.service_present:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('endpoints', []) %}

{{ state.id }}:
  openstack_keystone.endpoints_present:
    {{- args(state) }}
{%- endfor %}
