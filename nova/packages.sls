{#- 8.2.1: the packages of this minion's roles (names from osfamilymap.yaml). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, heavy with context %}
{%- set pkgs = [] %}
{%- for role in nova.plan.roles %}
{%-   do pkgs.append(nova.lookup.pkgs[role]) %}
{%- endfor %}
{%- if 'compute' in nova.plan.roles and nova.compute.block_storage %}
{%-   do pkgs.append(nova.lookup.pkgs.cinderclient) %}
{%- endif %}

include:
  - {{ tplroot }}.validate
{%- if pkgs %}

nova-packages:
  {{ heavy('packages', 'pkg.installed') }}:
    - pkgs: {{ pkgs|json }}
{%-   if nova.lookup.install_recommends is not none %}
    - install_recommends: {{ nova.lookup.install_recommends|json }}
{%-   endif %}
{%- endif %}
