{#- nova.orch.deploy, last step, on the identity minion: each new compute
    of nova:canary:hosts (registered disabled) boots a test server forced
    onto it, deletes it, then is enabled; a failed canary leaves it disabled
    with the reason. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('day2', {}) %}

include:
  - {{ tplroot }}.validate
{%- for state in plan.get('canary', []) %}

{{ state.id }}:
  openstack_canary.host_proven:
    {{- args(state) }}
{%- endfor %}
