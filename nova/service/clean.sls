{#- nova.clean: Nova's daemons stopped, then disabled at boot (dbus and
    libvirtd stay: others use them). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.clean.get('service', {}) %}

include:
  - {{ tplroot }}.validate
{%- for state in plan.get('dead', []) %}

{{ state.id }}:
  service.dead:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('disabled', []) %}

{{ state.id }}:
  service.disabled:
    {{- args(state) }}
{%- endfor %}
