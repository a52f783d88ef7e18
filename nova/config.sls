{#- 8.2.3-8.2.12: nova.conf, api-paste.ini, nova-compute.conf through the INI
    engine (_states/openstack_ini.py): only the keys below are touched, in
    place; files are 0640 root:nova. The sections come from
    nova_formula.config_files() in the release's dialect; raw overrides from
    nova:config are merged last. State ids: nova-config-<file id>. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova with context %}

include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.packages
{%- for fid, file in nova.plan.files|dictsort %}

nova-config-{{ fid }}:
  openstack_ini.options_present:
    - name: {{ file.path|json }}
    - sections: {{ file.sections|json }}
    - secret_keys: {{ nova.plan.secret_keys|json }}
    - mode: '0640'
    - user: root
    - group: {{ nova.lookup.group|json }}
    - require:
      - sls: {{ tplroot }}.packages
{%- endfor %}
