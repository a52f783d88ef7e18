{#- 8.2.14: start and enable in the guide's order: messagebus, libvirtd
    (hypervisors using the libvirt driver), then api, scheduler, conductor,
    compute. Each service
    watches exactly the config states of the files it reads (lookup:
    service_files), so it restarts only when one of them changed. On the sync
    conductor nothing starts before the DB sync. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, heavy with context %}
{%- set roles = nova.plan.roles %}
{%- set order = [] %}
{%- if 'compute' in roles %}{% do order.append('messagebus') %}{% endif %}
{%- if nova.plan.libvirt %}{% do order.append('libvirt') %}{% endif %}
{%- for role in roles %}{% do order.append(role) %}{% endfor %}
{#- a service the OS does not have (lookup name null) is not managed #}
{%- set order = order|select('in', nova.lookup.services|dictsort|selectattr(1)|map(attribute=0)|list)|list %}

include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.config
{%- if nova.plan.libvirt %}
  - {{ tplroot }}.libvirt
{%- endif %}
{%- if nova.plan.db_sync %}
  - {{ tplroot }}.db_sync
{%- endif %}
{%- set previous = [] %}
{%- for svc in order %}
{%-   set requires = [{'sls': tplroot ~ '.config'}] + previous %}
{%-   if nova.plan.db_sync and svc in ('api', 'scheduler', 'conductor', 'compute') %}
{%-     do requires.append({'sls': tplroot ~ '.db_sync'}) %}
{%-   endif %}
{%-   set watch = [] %}
{%-   for fid in nova.lookup.service_files.get(svc, []) if fid in nova.plan.files %}
{%-     do watch.append('nova-config-' ~ fid) %}
{%-   endfor %}
{%-   if svc == 'libvirt' and nova.network.plugin == 'linuxbridge' %}
{%-     do watch.append({'sls': tplroot ~ '.libvirt'}) %}
{%-   endif %}

nova-service-{{ svc }}:
  {{ heavy('services', 'service.running') }}:
    - name: {{ nova.lookup.services[svc] }}
    - enable: True
{%-   if nova.lookup.service_sigs.get(svc) %}
    - sig: {{ nova.lookup.service_sigs[svc]|json }}
{%-   endif %}
    - require: {{ requires|json }}
{%-   if watch %}
    - watch: {{ watch|json }}
{%-   endif %}
{%-   do previous.clear() %}{% do previous.append('nova-service-' ~ svc) %}
{%- endfor %}
