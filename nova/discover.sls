{#- Cells v2: map compute hosts that registered but have no host mapping
    (nova-manage cell_v2 discover_hosts, only when one is missing). With
    nova:fleet:discover:expect > 0 (set by the orchestrate) it first waits,
    with bounded retries, until that many computes registered. Skipped when a
    local service failed to start (nothing would register). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, heavy with context %}
{%- set discover = nova.fleet.discover %}

include:
  - {{ tplroot }}.validate
{%- if nova.plan.db_sync and nova.dialect == 'current' %}
  - {{ tplroot }}.db_sync
  - {{ tplroot }}.service

nova-discover-hosts:
  {{ heavy('discover', 'nova_manage.hosts_discovered') }}:
    - name: computes
    - expect: {{ discover.expect|int }}
{%-   if discover.expect|int > 0 %}
    - retry:
        attempts: {{ discover.attempts|int }}
        interval: {{ discover.interval|int }}
        until: True
{%-   endif %}
    - require:
      - sls: {{ tplroot }}.db_sync
      - sls: {{ tplroot }}.service
{%- endif %}
