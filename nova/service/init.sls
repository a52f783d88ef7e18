{#- 8.2.14: start in the guide's order, and enable at boot; each service watches
    exactly the config states of the files it reads, so it restarts only when
    one of them changed; on the sync conductor nothing starts before the DB
    sync. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('service', {}) %}

include:
  - {{ tplroot }}.validate
{%- for sls in nova.plan.needs.get('service', []) %}
  - {{ sls }}
{%- endfor %}
{%- for state in plan.get('running', []) %}

{{ state.id }}:
  service.running:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('enabled', []) %}

{{ state.id }}:
  service.enabled:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('stopped', []) %}

{{ state.id }}:
  service.dead:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('disabled', []) %}

{{ state.id }}:
  service.disabled:
    {{- args(state) }}
{%- endfor %}
