{#- 8.2.13: the schema, once, on the one sync conductor, as the nova user,
    after the databases and nova.conf and before any service: API DB, cells
    mapped with nova.conf's URLs, main DB (_states/nova_manage.py checks first,
    so a second run changes nothing). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('db_sync', {}) %}

include:
  - {{ tplroot }}.validate
{%- for sls in nova.plan.needs.get('db_sync', []) %}
  - {{ sls }}
{%- endfor %}
{%- for state in plan.get('api_db', []) %}

{{ state.id }}:
  nova_manage.api_db_synced:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('cells', []) %}

{{ state.id }}:
  nova_manage.cell_present:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('db', []) %}

{{ state.id }}:
  nova_manage.db_synced:
    {{- args(state) }}
{%- endfor %}
