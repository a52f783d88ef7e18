{#- nova.clean: the formula's lines removed from the sysctl file (the running
    kernel keeps its values until the next boot). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.clean.get('sysctl', {}) %}

include:
  - {{ tplroot }}.validate
{%- for state in plan.get('lines', []) %}

{{ state.id }}:
  file.replace:
    {{- args(state) }}
{%- endfor %}
