{#- nova.clean: the files the formula managed, after the packages are purged. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.clean.get('config', {}) %}

include:
  - {{ tplroot }}.validate
{%- for state in plan.get('absent', []) %}

{{ state.id }}:
  file.absent:
    {{- args(state) }}
{%- endfor %}
