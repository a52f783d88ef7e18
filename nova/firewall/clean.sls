{#- nova.clean: the formula's rules deleted (and saved). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.clean.get('firewall', {}) %}

include:
  - {{ tplroot }}.validate
{%- for state in plan.get('deleted', []) %}

{{ state.id }}:
  iptables.delete:
    {{- args(state) }}
{%- endfor %}
