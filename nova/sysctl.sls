{#- 8.2.12.2: kernel parameters on computes with OpenStack Networking,
    persisted in the sysctl file of the map. A key the kernel does not have
    (bridge-nf needs br_netfilter) fails that one state with a clear hint. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, heavy with context %}

include:
  - {{ tplroot }}.validate
{%- if 'compute' in nova.plan.roles and nova.network.type == 'neutron' %}
{%-   for key, value in nova.sysctl|dictsort %}

nova-sysctl-{{ key }}:
{%-     if nova.manage.sysctl and not salt['nova_formula.sysctl_exists'](key) %}
  test.fail_without_changes:
    - name: {{ key }}
    - comment: {{ ("The running kernel has no " ~ key ~ " (no /proc/sys entry)"
                   ~ (": load the br_netfilter module (modprobe br_netfilter) first" if key.startswith('net.bridge.') else "")
                   ~ "; nova:sysctl:" ~ key ~ " was not set.")|json }}
{%-     else %}
  {{ heavy('sysctl', 'sysctl.present') }}:
    - name: {{ key }}
    - value: {{ value|json }}
    - config: {{ nova.lookup.sysctl_conf|json }}
{%-     endif %}
{%-   endfor %}
{%- endif %}
