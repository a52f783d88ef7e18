{#- salt-run state.orchestrate nova.orch.maintenance \
      pillar='nova: { maintenance: { hosts: [cmp1], action: drain, reason: disk swap } }'
    action drain: on the identity minion (admin credentials), each host's
    nova-compute is disabled with the reason and every server moved away
    (live, else cold); a failure names the servers left. action enable: the
    hosts' own `nova` run (nova-compute running again), then their services
    enabled. Targets from nova_formula.fleet_targets(), as nova.orch.deploy. -#}
{%- set fleet = salt['pillar.get']('nova:fleet', {}) %}
{%- set mt = salt['pillar.get']('nova:maintenance', {}) %}
{%- set passed = dict(nova=dict(maintenance=mt)) %}
{%- if 'nova_formula.fleet_targets' not in salt %}

nova-orch-modules:
  test.fail_without_changes:
    - name: nova formula modules
    - comment: "The nova formula's modules are not synced to the master: run
        `salt-run saltutil.sync_all`, then orchestrate again."
    - failhard: True
{%- else %}
{%-   set to = salt['nova_formula.fleet_targets'](fleet, {}, {'maintenance': mt, 'need_hosts': True}) %}
{%-   if to.errors %}

nova-orch-maintenance:
  test.fail_without_changes:
    - name: nova:maintenance
    - comment: {{ to.errors|join('; ')|json }}
    - failhard: True
{%-   else %}

nova-orch-sync-modules:
  salt.function:
    - name: saltutil.sync_all
    - tgt: {{ ([to.identity] + to.hosts)|json }}
    - tgt_type: list
    - expect_minions: True
    - failhard: True
{%-     for step in to.maintenance %}

{{ step.id }}:
  salt.state:
    - tgt: {{ step.tgt|json }}
    - tgt_type: list
    - sls: {{ step.sls }}
    - pillar: {{ passed|json }}
    - failhard: True
    - require:
      - {{ to.maintenance[loop.index0 - 1].id if not loop.first else 'nova-orch-sync-modules' }}
{%-     endfor %}
{%-   endif %}
{%- endif %}
