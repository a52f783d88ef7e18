{#- nova.clean (and nova.orch.remove_compute): this compute's keys taken out
    of the mine, so the others' next trust run drops it from their
    authorized_keys and known_hosts. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.clean.get('migration', {}) %}

include:
  - {{ tplroot }}.validate
{%- for state in plan.get('unpublished', []) %}

{{ state.id }}:
  openstack_ssh.unpublished:
    {{- args(state) }}
{%- endfor %}
