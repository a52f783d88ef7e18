{#- salt-run state.orchestrate nova.orch.upgrade
    A rolling update of the fleet to nova:version (a point update, or a
    release upgrade with a new nova:release too), in Nova's order; every step
    requires the previous one and is failhard. Targets and the hosts behind
    the version come from nova_upgrade.targets() (the master's pillar
    nova:fleet and nova:version, the minions' installed python3-nova):
      1. the sync conductor gets the new packages (no daemon restarts) and
         runs `nova-status upgrade check`: a failure stops here;
      2. [upgrade_levels] compute = auto on every Nova host (no restart);
      3. API DB and cell DB syncs, once, on the sync conductor;
      4. controllers: conductors, then schedulers, then the APIs restarted
         (each daemon only when older than its packages or config);
      5. computes in batches (nova:fleet:batch) that are behind: disabled,
         updated (nova-compute restarted once), enabled;
      6. once every service reports the new service version: the pin lifted
         (`nova` everywhere, each daemon restarted once), then
         `nova-manage db online_data_migrations` until done.
    With no host behind, steps 2-5 are left out: a rerun changes nothing. -#}
{%- set fleet = salt['pillar.get']('nova:fleet', {}) %}
{%- set version = salt['pillar.get']('nova:version') %}
{%- set aggregates = salt['pillar.get']('nova:aggregates', {}) %}
{%- if 'nova_upgrade.targets' not in salt %}

nova-orch-modules:
  test.fail_without_changes:
    - name: nova formula modules
    - comment: "The nova formula's modules are not synced to the master: run
        `salt-run saltutil.sync_all`, then orchestrate again."
    - failhard: True
{%- else %}
{%-   set to = salt['nova_upgrade.targets'](fleet, version, aggregates) %}
{%-   if to.errors %}

nova-orch-fleet:
  test.fail_without_changes:
    - name: nova:fleet
    - comment: {{ to.errors|join('; ')|json }}
    - failhard: True
{%-   else %}

nova-orch-upgrade-sync-modules:
  salt.function:
    - name: saltutil.sync_all
    - tgt: {{ to.everyone.tgt|json }}
    - tgt_type: {{ to.everyone.tgt_type }}
    - expect_minions: True
    - failhard: True

# 1. the new packages on the sync conductor and the pre-check with them
nova-orch-upgrade-check:
  salt.state:
    - tgt: {{ to.sync|json }}
    - tgt_type: list
    - sls: nova.upgrade.check
    - failhard: True
    - require:
      - nova-orch-upgrade-sync-modules
{%-     set ns = namespace(last='nova-orch-upgrade-check') %}
{%-     if to.pending %}

# 2. the RPC pin on every Nova host for the roll (nova.conf only)
nova-orch-upgrade-pin:
  salt.state:
    - tgt: {{ to.nova_hosts.tgt|json }}
    - tgt_type: {{ to.nova_hosts.tgt_type }}
    - sls: nova.config
    - pillar: {{ to.pin_config|json }}
    - failhard: True
    - require:
      - {{ ns.last }}

# 3. the API and cell database schemas, once
nova-orch-upgrade-db-sync:
  salt.state:
    - tgt: {{ to.sync|json }}
    - tgt_type: list
    - sls: nova.db_sync
    - pillar: {{ to.pin_config|json }}
    - failhard: True
    - require:
      - nova-orch-upgrade-pin
{%-       set ns.last = 'nova-orch-upgrade-db-sync' %}
{%-       for step in to.restart %}

# 4. controllers: {{ step.services|join(', ') }}
nova-orch-upgrade-restart-{{ step.step }}:
  salt.state:
    - tgt: {{ to.controllers.tgt|json }}
    - tgt_type: {{ to.controllers.tgt_type }}
    - sls: nova.upgrade.restart
    - pillar: {{ step.pillar|json }}
    - failhard: True
    - require:
      - {{ ns.last }}
{%-         set ns.last = 'nova-orch-upgrade-restart-' ~ step.step %}
{%-       endfor %}
{%-       for batch in to.compute_batches %}
{%-         set n = loop.index %}

# 5. computes, a batch at a time: disabled, updated, enabled
nova-orch-upgrade-disable-{{ n }}:
  salt.state:
    - tgt: {{ [to.identity]|json }}
    - tgt_type: list
    - sls: nova.upgrade.computes
    - pillar: {{ batch.disable|json }}
    - failhard: True
    - require:
      - {{ ns.last }}

nova-orch-upgrade-computes-{{ n }}:
  salt.state:
    - tgt: {{ batch.hosts|json }}
    - tgt_type: list
    - sls: nova
    - pillar: {{ to.pin|json }}
    - failhard: True
    - require:
      - nova-orch-upgrade-disable-{{ n }}

nova-orch-upgrade-enable-{{ n }}:
  salt.state:
    - tgt: {{ [to.identity]|json }}
    - tgt_type: list
    - sls: nova.upgrade.computes
    - pillar: {{ batch.enable|json }}
    - failhard: True
    - require:
      - nova-orch-upgrade-computes-{{ n }}
{%-         set ns.last = 'nova-orch-upgrade-enable-' ~ n %}
{%-       endfor %}
{%-     endif %}

# 6. every service at the new service version (read from the cell DBs)
nova-orch-upgrade-versions:
  salt.state:
    - tgt: {{ to.sync|json }}
    - tgt_type: list
    - sls: nova.upgrade.versions
    - failhard: True
    - require:
      - {{ ns.last }}

# the pin lifted: `nova` as deployed, in the deploy's order
nova-orch-upgrade-lift-sync-node:
  salt.state:
    - tgt: {{ to.sync|json }}
    - tgt_type: list
    - sls: nova
{%-     if to.hold %}
    - pillar: {{ to.hold|json }}
{%-     endif %}
    - failhard: True
    - require:
      - nova-orch-upgrade-versions
{%-     set ns.last = 'nova-orch-upgrade-lift-sync-node' %}
{%-     if to.control.tgt %}

nova-orch-upgrade-lift-controllers:
  salt.state:
    - tgt: {{ to.control.tgt|json }}
    - tgt_type: {{ to.control.tgt_type }}
    - sls: nova
{%-       if to.hold %}
    - pillar: {{ to.hold|json }}
{%-       endif %}
    - failhard: True
    - require:
      - {{ ns.last }}
{%-       set ns.last = 'nova-orch-upgrade-lift-controllers' %}
{%-     endif %}
{%-     for batch in to.batches %}

nova-orch-upgrade-lift-computes-{{ loop.index }}:
  salt.state:
    - tgt: {{ batch|json }}
    - tgt_type: list
    - sls: nova
    - failhard: True
    - require:
      - {{ ns.last }}
{%-       set ns.last = 'nova-orch-upgrade-lift-computes-' ~ loop.index %}
{%-     endfor %}

# then Nova's online data migrations, until done
nova-orch-upgrade-migrations:
  salt.state:
    - tgt: {{ to.sync|json }}
    - tgt_type: list
    - sls: nova.upgrade.migrations
    - failhard: True
    - require:
      - {{ ns.last }}
{%-   endif %}
{%- endif %}
