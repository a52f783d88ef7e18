{#- `state.apply nova`: this minion's part of the install guide, chosen from
    pillar nova:roles (api, scheduler, conductor, compute; any mix) and
    nova:fleet (which minion creates the databases, the Keystone records and
    runs the DB sync). Each included SLS is one concern. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova with context %}
{%- set plan = nova.plan %}
{%- set roles = plan.roles %}

include:
  - {{ tplroot }}.validate
{%- if plan.database %}
  - {{ tplroot }}.database
{%- endif %}
{%- if plan.identity %}
  - {{ tplroot }}.identity
{%- endif %}
{%- if roles %}
  - {{ tplroot }}.packages
  - {{ tplroot }}.config
  - {{ tplroot }}.firewall
  - {{ tplroot }}.nova_network
{%- endif %}
{%- if 'compute' in roles %}
  - {{ tplroot }}.sysctl
{%- endif %}
{%- if plan.libvirt %}
  - {{ tplroot }}.libvirt
{%- endif %}
{%- if plan.db_sync %}
  - {{ tplroot }}.db_sync
{%- endif %}
{%- if roles %}
  - {{ tplroot }}.service
{%- endif %}
{%- if plan.db_sync and nova.dialect == 'current' %}
  - {{ tplroot }}.discover
{%- endif %}
