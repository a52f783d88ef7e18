{#- `state.apply nova`: this minion's part of the install guide. Which
    concerns run comes from the plan (nova:roles, nova:fleet, nova:manage). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}

include:
  - {{ tplroot }}.validate
{%- for concern in nova.plan.concerns %}
  - {{ tplroot }}.{{ concern }}
{%- endfor %}
