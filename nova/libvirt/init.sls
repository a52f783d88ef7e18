{#- 8.2.12.4: with the Linux Bridge plugin, qemu.conf runs guests as root and
    widens cgroup_device_acl; each line replaces its (commented) default. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('libvirt', {}) %}

include:
  - {{ tplroot }}.validate
{%- for sls in nova.plan.needs.get('libvirt', []) %}
  - {{ sls }}
{%- endfor %}
{%- for state in plan.get('lines', []) %}

{{ state.id }}:
  file.replace:
    {{- args(state) }}
{%- endfor %}
