{#- Cells v2: map compute hosts that registered but have no host mapping
    (nova-manage cell_v2 discover_hosts, only when one is missing). With
    nova:fleet:discover:expect (set by the orchestrate: the compute host names)
    it first waits, with bounded retries, until those computes registered. Skipped when a
    local service failed to start (nothing would register). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, heavy with context %}
{%- set discover = nova.fleet.discover %}
{#- expect: a count, or the host names of the computes (then a missing one is
    named); with a count, fleet:computes names them when it lists that many. #}
{%- if discover.expect is iterable and discover.expect is not string %}
{%-   set expect, count = discover.expect|list, discover.expect|length %}
{%- else %}
{%-   set expect, count = discover.expect|int, discover.expect|int %}
{%- endif %}

include:
  - {{ tplroot }}.validate
{%- if nova.plan.db_sync and nova.dialect == 'current' %}
  - {{ tplroot }}.db_sync
  - {{ tplroot }}.service

nova-discover-hosts:
  {{ heavy('discover', 'nova_manage.hosts_discovered') }}:
    - name: computes
    - expect: {{ expect|json }}
    - hosts: {{ (nova.fleet.computes or [])|list|json }}
{%-   if count > 0 %}
    - retry:
        attempts: {{ discover.attempts|int }}
        interval: {{ discover.interval|int }}
        until: True
{%-   endif %}
    - require:
      - sls: {{ tplroot }}.db_sync
      - sls: {{ tplroot }}.service
{%- endif %}
