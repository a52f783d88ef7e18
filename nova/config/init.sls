{#- 8.2.3-8.2.12: nova.conf, api-paste.ini, nova-compute.conf through the INI
    engine (_states/openstack_ini.py): mode and owner first (0640 root:nova,
    before any secret is written; a service does not restart for them), then
    only the keys of the plan, in place; and where the API listens. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('config', {}) %}

include:
  - {{ tplroot }}.validate
{%- for sls in nova.plan.needs.get('config', []) %}
  - {{ sls }}
{%- endfor %}
{%- for state in plan.get('permissions', []) %}

{{ state.id }}:
  openstack_ini.permissions_present:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('options', []) %}

{{ state.id }}:
  openstack_ini.options_present:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('plain', []) %}

{{ state.id }}:
  file.managed:
    {{- args(state) }}
{%- endfor %}
