{#- The rendered map and plan of this minion, for tests and debugging
    (template-formula's _mapdata): `salt-call state.show_sls nova._mapdata`.
    It holds the pillar's secrets: show it only where the pillar may be read. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}

nova-mapdata:
  test.nop:
    - map: {{ nova|json }}
