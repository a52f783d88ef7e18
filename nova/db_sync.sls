{#- 8.2.13: the schema, once, on the one sync conductor (nova:fleet), as the
    nova user, after the databases and nova.conf and before any service.
    _states/nova_manage.py compares the DB version with the installed code's
    head and the cells' URLs with nova.conf first, so a second run changes
    nothing. Current releases: api_db sync, cell0 and cell1 mapped with
    nova.conf's URLs (created, or updated after a password rotation), db sync. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, heavy with context %}

include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.config
{%- if nova.plan.database %}
  - {{ tplroot }}.database
{%- endif %}
{%- if nova.plan.db_sync %}
{%-   set after = [{'sls': tplroot ~ '.config'}] %}
{%-   if nova.plan.database %}{% do after.append({'sls': tplroot ~ '.database'}) %}{% endif %}
{%-   if nova.dialect == 'current' %}

nova-api-db-sync:
  {{ heavy('db_sync', 'nova_manage.api_db_synced') }}:
    - name: api_db
    - require: {{ after|json }}

nova-cell0-mapped:
  {{ heavy('db_sync', 'nova_manage.cell_present') }}:
    - name: cell0
    - require:
      - nova-api-db-sync

nova-cell1-present:
  {{ heavy('db_sync', 'nova_manage.cell_present') }}:
    - name: cell1
    - require:
      - nova-cell0-mapped
{%-     set after = ['nova-cell1-present'] %}
{%-   endif %}

nova-db-sync:
  {{ heavy('db_sync', 'nova_manage.db_synced') }}:
    - name: db
    - require: {{ after|json }}
{%- endif %}
