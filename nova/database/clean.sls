{#- nova.clean with nova:clean:data: the DB users, then the databases (their
    data is gone for good). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.clean.get('database', {}) %}

include:
  - {{ tplroot }}.validate
{%- for state in plan.get('users', []) %}

{{ state.id }}:
  openstack_db.user_absent:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('databases', []) %}

{{ state.id }}:
  openstack_db.database_absent:
    {{- args(state) }}
{%- endfor %}
