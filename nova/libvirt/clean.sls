{#- nova.clean: the qemu.conf lines commented back to their defaults. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.clean.get('libvirt', {}) %}

include:
  - {{ tplroot }}.validate
{%- for state in plan.get('lines', []) %}

{{ state.id }}:
  file.replace:
    {{- args(state) }}
{%- endfor %}
