{#- API policy overrides in policy.yaml on API nodes: only the rules of
    nova:policy, their names checked against the installed Nova's defaults
    before the file changes. No restart: oslo.policy reloads the file. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('policy', {}) %}

include:
  - {{ tplroot }}.validate
{%- for sls in nova.plan.needs.get('policy', []) %}
  - {{ sls }}
{%- endfor %}
{%- for state in plan.get('known', []) %}

{{ state.id }}:
  nova_policy.rules_known:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('file', []) %}

{{ state.id }}:
  file.managed:
    {{- args(state) }}
{%- endfor %}
