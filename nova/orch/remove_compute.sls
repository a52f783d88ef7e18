{#- salt-run state.orchestrate nova.orch.remove_compute \
      pillar='nova: { maintenance: { hosts: [cmp2] } }'
    Each host leaves the fleet: drained (on the identity minion), its
    nova-compute stopped and its keys taken out of the mine (on the host),
    decommissioned (service record, host mapping, Placement providers;
    retried until Nova reports the stopped service down), then the other
    computes' authorized_keys and known_hosts rebuilt without it. Then take
    it out of nova:fleet:computes. A rerun changes nothing. -#}
{%- set fleet = salt['pillar.get']('nova:fleet', {}) %}
{%- set mt = salt['pillar.get']('nova:maintenance', {}) %}
{%- set passed = dict(nova=dict(maintenance=mt)) %}
{%- set day2 = {'maintenance': mt, 'need_hosts': True,
                'migration': salt['pillar.get']('nova:migration', {}),
                'manage': salt['pillar.get']('nova:manage', {})} %}
{%- if 'nova_formula.fleet_targets' not in salt %}

nova-orch-modules:
  test.fail_without_changes:
    - name: nova formula modules
    - comment: "The nova formula's modules are not synced to the master: run
        `salt-run saltutil.sync_all`, then orchestrate again."
    - failhard: True
{%- else %}
{%-   set to = salt['nova_formula.fleet_targets'](fleet, {}, day2) %}
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
    - tgt: {{ ([to.identity] + to.hosts + to.keep)|json }}
    - tgt_type: list
    - expect_minions: True
    - failhard: True
{%-     for step in to.removal %}

{{ step.id }}:
  salt.state:
    - tgt: {{ step.tgt|json }}
    - tgt_type: list
    - sls: {{ step.sls|json }}
    - pillar: {{ passed|json }}
    - failhard: True
    - require:
      - {{ to.removal[loop.index0 - 1].id if not loop.first else 'nova-orch-sync-modules' }}
{%-     endfor %}
{%-   endif %}
{%- endif %}
