{#- 8.2.2: databases, the nova user for each host pattern, and its grants,
    through _states/openstack_db.py. Runs on the nova:fleet:database minion
    (default: the sync conductor), against the server of
    nova:database:admin (default: openstack_db:connection in config). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, heavy with context %}
{%- set db = nova.database %}
{%- macro connection() %}
{%-   if db.admin %}
    - connection: {{ db.admin|json }}
{%-   endif %}
{%- endmacro %}

include:
  - {{ tplroot }}.validate
{%- for name in nova.plan.databases %}

nova-db-{{ name }}:
  {{ heavy('database', 'openstack_db.database_present') }}:
    - name: {{ name }}
    - character_set: {{ nova.lookup.db_character_set|json }}
    {{- connection() }}
{%- endfor %}
{%- for host in db.grant_hosts %}

nova-db-user-{{ host }}:
  {{ heavy('database', 'openstack_db.user_present') }}:
    - name: {{ db.user|json }}
    - host: {{ host|json }}
    - password: {{ db.password|json }}
    {{- connection() }}
{%-   for name in nova.plan.databases %}

nova-db-grant-{{ name }}-{{ host }}:
  {{ heavy('database', 'openstack_db.grants_present') }}:
    - name: {{ db.user|json }}
    - host: {{ host|json }}
    - database: {{ name }}
    - privileges: ALL
    {{- connection() }}
    - require:
      - nova-db-{{ name }}
      - nova-db-user-{{ host }}
{%-   endfor %}
{%- endfor %}
