{#- 8.2.12.1: with OpenStack Networking, nova-network must not run: stop,
    disable and remove it (legacy releases; current Nova has no nova-network). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, heavy with context %}

include:
  - {{ tplroot }}.validate
{%- if nova.network.type == 'neutron' and nova.lookup.services.nova_network %}

nova-network-dead:
  {{ heavy('nova_network', 'service.dead') }}:
    - name: {{ nova.lookup.services.nova_network }}
    - enable: False

nova-network-removed:
  {{ heavy('nova_network', 'pkg.removed') }}:
    - name: {{ nova.lookup.pkgs.nova_network }}
    - require:
      - nova-network-dead
{%- endif %}
