{#- 8.2.4: the Keystone records of Nova, through _states/openstack_keystone.py:
    project, service user, role grant, catalog service and its endpoints.
    Runs on the nova:fleet:identity minion (default: the sync conductor) with
    nova:identity:admin or :cloud credentials (default: openstack_keystone:*). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, heavy with context %}
{%- set ks = nova.identity %}
{%- macro credentials() %}
{%-   if ks.admin %}
    - auth: {{ ks.admin|json }}
{%-   elif ks.cloud %}
    - cloud: {{ ks.cloud|json }}
{%-   endif %}
{%- endmacro %}

include:
  - {{ tplroot }}.validate

nova-keystone-project:
  {{ heavy('identity', 'openstack_keystone.project_present') }}:
    - name: {{ ks.project|json }}
    - domain: {{ ks.project_domain|json }}
    {{- credentials() }}

nova-keystone-user:
  {{ heavy('identity', 'openstack_keystone.user_present') }}:
    - name: {{ ks.user|json }}
    - password: {{ ks.password|json }}
    - domain: {{ ks.user_domain|json }}
    - default_project: {{ ks.project|json }}
    {{- credentials() }}
    - require:
      - nova-keystone-project

nova-keystone-role:
  {{ heavy('identity', 'openstack_keystone.role_present') }}:
    - name: {{ ks.role|json }}
    {{- credentials() }}

nova-keystone-role-grant:
  {{ heavy('identity', 'openstack_keystone.role_grant_present') }}:
    - name: {{ ks.role|json }}
    - user: {{ ks.user|json }}
    - project: {{ ks.project|json }}
    - user_domain: {{ ks.user_domain|json }}
    - project_domain: {{ ks.project_domain|json }}
    {{- credentials() }}
    - require:
      - nova-keystone-user
      - nova-keystone-role

{%- if ks.service_role and ks.service_role != ks.role %}

nova-keystone-service-role:
  {{ heavy('identity', 'openstack_keystone.role_present') }}:
    - name: {{ ks.service_role|json }}
    {{- credentials() }}

nova-keystone-service-role-grant:
  {{ heavy('identity', 'openstack_keystone.role_grant_present') }}:
    - name: {{ ks.service_role|json }}
    - user: {{ ks.user|json }}
    - project: {{ ks.project|json }}
    - user_domain: {{ ks.user_domain|json }}
    - project_domain: {{ ks.project_domain|json }}
    {{- credentials() }}
    - require:
      - nova-keystone-user
      - nova-keystone-service-role
{%- endif %}

nova-keystone-service:
  {{ heavy('identity', 'openstack_keystone.service_present') }}:
    - name: {{ ks.service.name|json }}
    - type: {{ ks.service.type|json }}
    - description: {{ ks.service.description|json }}
    {{- credentials() }}

nova-keystone-endpoints:
  {{ heavy('identity', 'openstack_keystone.endpoints_present') }}:
    - name: {{ ks.service.name|json }}
    - region: {{ ks.region|json }}
    - public: {{ ks.endpoints.public|json }}
    - internal: {{ ks.endpoints.internal|json }}
    - admin: {{ ks.endpoints.admin|json }}
    {{- credentials() }}
    - require:
      - nova-keystone-service
