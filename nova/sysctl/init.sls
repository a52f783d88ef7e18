{#- 8.2.12.2: kernel parameters on computes with OpenStack Networking,
    persisted in the sysctl file; a key the running kernel lacks fails with a
    hint (bridge-nf needs br_netfilter). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('sysctl', {}) %}

include:
  - {{ tplroot }}.validate
{%- for sls in nova.plan.needs.get('sysctl', []) %}
  - {{ sls }}
{%- endfor %}
{%- for state in plan.get('present', []) %}

{{ state.id }}:
  sysctl.present:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('missing', []) %}

{{ state.id }}:
  test.fail_without_changes:
    {{- args(state) }}
{%- endfor %}
