{#- 8.2.6: accept VNC consoles (computes) and the Compute API (API nodes).
    Inserted at position 1, so before any REJECT rule; iptables.insert checks
    first (never duplicated) and saves to the OS's rules file. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, heavy with context %}
{%- set ports = {} %}
{%- if 'compute' in nova.plan.roles %}{% do ports.update({'vnc': nova.firewall.vnc_ports}) %}{% endif %}
{%- if 'api' in nova.plan.roles %}{% do ports.update({'api': nova.firewall.api_port}) %}{% endif %}

include:
  - {{ tplroot }}.validate
{%- if ports %}

nova-firewall-package:
  {{ heavy('firewall', 'pkg.installed') }}:
    - name: {{ nova.lookup.iptables_pkg }}
{%- endif %}
{%- for name, port in ports|dictsort %}

nova-firewall-{{ name }}:
  {{ heavy('firewall', 'iptables.insert') }}:
    - table: filter
    - chain: INPUT
    - position: 1
    - proto: tcp
    - match: multiport
    - dports: {{ port|string|json }}
    - jump: ACCEPT
    - save: {{ nova.lookup.iptables_save|json }}
    - require:
      - nova-firewall-package
{%- endfor %}
