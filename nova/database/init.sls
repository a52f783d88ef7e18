{#- 8.2.2: the databases, the nova user for each host pattern, and its grants,
    through _states/openstack_db.py, on the nova:fleet:database minion (default:
    the sync conductor), against the server of nova:database:admin. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('database', {}) %}

include:
  - {{ tplroot }}.validate
{%- for sls in nova.plan.needs.get('database', []) %}
  - {{ sls }}
{%- endfor %}
{%- for state in plan.get('databases', []) %}

{{ state.id }}:
  openstack_db.database_present:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('users', []) %}

{{ state.id }}:
  openstack_db.user_present:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('grants', []) %}

{{ state.id }}:
  openstack_db.grants_present:
    {{- args(state) }}
{%- endfor %}
