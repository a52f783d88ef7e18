{#- 8.2.6: accept VNC consoles (computes) and the Compute API (API nodes),
    inserted at position 1 (before any REJECT), never duplicated, saved to the
    OS's rules file, which the OS restores at boot. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('firewall', {}) %}

include:
  - {{ tplroot }}.validate
{%- for sls in nova.plan.needs.get('firewall', []) %}
  - {{ sls }}
{%- endfor %}
{%- for state in plan.get('packages', []) %}

{{ state.id }}:
  pkg.installed:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('rules', []) %}

{{ state.id }}:
  iptables.insert:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('boot', []) %}

{{ state.id }}:
  service.enabled:
    {{- args(state) }}
{%- endfor %}
