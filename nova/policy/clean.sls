{#- nova.clean: the formula's policy.yaml (Nova's defaults apply again). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.clean.get('policy', {}) %}

include:
  - {{ tplroot }}.validate
{%- for state in plan.get('absent', []) %}

{{ state.id }}:
  file.absent:
    {{- args(state) }}
{%- endfor %}
