{#- 8.2.12.4: with the Linux Bridge plugin, qemu.conf runs guests as root
    and widens cgroup_device_acl. Each line replaces its (commented) default
    in place, or is appended once. libvirtd restarts on a change (service.sls). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, heavy with context %}

include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.packages
{%- if nova.plan.libvirt and nova.network.plugin == 'linuxbridge' %}
{%-   for key, value in nova.libvirt.linuxbridge_qemu_conf|dictsort %}

nova-libvirt-qemu-{{ key }}:
  {{ heavy('libvirt', 'file.replace') }}:
    - name: {{ nova.lookup.qemu_conf|json }}
    - pattern: {{ ('^#?' ~ key ~ '\\s*=.*$')|json }}
    - repl: {{ (key ~ ' = ' ~ value)|json }}
    - append_if_not_found: True
    - require:
      - sls: {{ tplroot }}.packages
{%-   endfor %}
{%- endif %}
