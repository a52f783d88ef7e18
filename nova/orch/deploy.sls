{#- salt-run state.orchestrate nova.orch.deploy
    A whole fleet in the install guide's order. Every target comes from
    nova_formula.fleet_targets() and the master's pillar nova:fleet (give the
    master the same data the minions see): minion ids, or compound targets
    matched on the master. Each step requires the previous one and is
    failhard: a failed step stops the rollout. A minion that does not answer
    fails the step that targets it (its batch, for a compute), not the module
    sync. The last step fails, naming each failed minion and its step, when
    any minion failed (also those nova:fleet:max_fail let through). The
    formula's modules must be synced to the master once
    (`salt-run saltutil.sync_all`). -#}
{%- set fleet = salt['pillar.get']('nova:fleet', {}) %}
{%- set aggregates = salt['pillar.get']('nova:aggregates', {}) %}
{%- if 'nova_formula.fleet_targets' not in salt %}

nova-orch-modules:
  test.fail_without_changes:
    - name: nova formula modules
    - comment: "The nova formula's modules are not synced to the master: run
        `salt-run saltutil.sync_all`, then orchestrate again."
    - failhard: True
{%- else %}
{%-   set day2 = {'canary': salt['pillar.get']('nova:canary', {}),
                  'migration': salt['pillar.get']('nova:migration', {}),
                  'manage': salt['pillar.get']('nova:manage', {})} %}
{%-   set to = salt['nova_formula.fleet_targets'](fleet, aggregates, day2) %}
{%-   if to.errors %}

nova-orch-fleet:
  test.fail_without_changes:
    - name: nova:fleet
    - comment: {{ to.errors|join('; ')|json }}
    - failhard: True
{%-   else %}

# the minions that answer; one that does not fails at its own step below
nova-orch-sync-modules:
  salt.function:
    - name: saltutil.sync_all
    - tgt: {{ to.everyone.tgt|json }}
    - tgt_type: {{ to.everyone.tgt_type }}
    - expect_minions: False
    - failhard: True

{%-     for job in to.one_off %}

# on a minion of its own (nova:fleet:database / identity)
{{ job.step }}:
  salt.state:
    - tgt: {{ job.tgt|json }}
    - tgt_type: list
    - sls: {{ job.sls }}
    - failhard: True
    - require:
      - {{ to.one_off[loop.index0 - 1].step if not loop.first else 'nova-orch-sync-modules' }}
{%-     endfor %}

# the sync conductor first: its `nova` run syncs the schema and maps the
# cells after its config and before its services (a config change restarts
# them: config and services in the same run)
nova-orch-sync-node:
  salt.state:
    - tgt: {{ to.sync|json }}
    - tgt_type: list
    - sls: nova
{%-     if to.hold %}
    - pillar: {{ to.hold|json }}
{%-     endif %}
    - failhard: True
    - require:
      - {{ to.one_off[-1].step if to.one_off else 'nova-orch-sync-modules' }}
{%-     if to.control.tgt %}

# the other controllers, and conductors that are not controllers
nova-orch-controllers:
  salt.state:
    - tgt: {{ to.control.tgt|json }}
    - tgt_type: {{ to.control.tgt_type }}
    - sls: nova
{%-       if to.hold %}
    - pillar: {{ to.hold|json }}
{%-       endif %}
    - failhard: True
    - require:
      - nova-orch-sync-node
{%-     endif %}

{%-     set after = 'nova-orch-controllers' if to.control.tgt else 'nova-orch-sync-node' %}
{%-     for batch in to.batches %}

# computes, nova:fleet:batch at a time; a failed batch stops the rollout
# (nova:fleet:max_fail: minions of a batch that may fail without stopping it)
nova-orch-computes-{{ loop.index }}:
  salt.state:
    - tgt: {{ batch|json }}
    - tgt_type: list
    - sls: nova
    - expect_minions: True
    - allow_fail: {{ to.max_fail }}
    - failhard: True
    - require:
      - {{ after if loop.first else 'nova-orch-computes-' ~ (loop.index - 1) }}
{%-     endfor %}

# a count: minion ids need not be the host names nova-compute registers;
# the state names the missing ones from fleet:computes
nova-orch-discover:
  salt.state:
    - tgt: {{ to.sync|json }}
    - tgt_type: list
    - sls: nova.discover
    - pillar:
        nova:
          fleet:
            discover:
              expect: {{ to.compute_ids|length }}
    - failhard: True
    - require:
      - nova-orch-computes-{{ to.batches|length }}
{%-     if to.aggregates %}

# host aggregates and zones, now that every compute is mapped
nova-orch-aggregates:
  salt.state:
    - tgt: {{ [to.aggregates]|json }}
    - tgt_type: list
    - sls: nova.aggregates
    - failhard: True
    - require:
      - nova-orch-discover
{%-     endif %}
{%-     set last = 'nova-orch-aggregates' if to.aggregates else 'nova-orch-discover' %}
{%-     if to.trust %}

# migration trust: a compute's own run saw the computes before it in the
# mine; now every compute trusts every other (a host that joined included).
# A compute that does not answer was already failed (or let through by
# max_fail) at its batch, and is named by the report: its trust waits for
# the next rollout
nova-orch-migration-trust:
  salt.state:
    - tgt: {{ to.computes.tgt|json }}
    - tgt_type: {{ to.computes.tgt_type }}
    - sls: nova.migration
    - expect_minions: False
    - failhard: True
    - require:
      - {{ last }}
{%-       set last = 'nova-orch-migration-trust' %}
{%-     endif %}
{%-     if to.canary %}

# canary: each compute still disabled since it registered gets a test
# server forced onto it, then is enabled; a failed one stays disabled and
# this step names it and why
nova-orch-canary:
  salt.state:
    - tgt: {{ [to.canary]|json }}
    - tgt_type: list
    - sls: nova.canary
    - pillar:
        nova:
          canary:
            hosts: {{ to.compute_ids|json }}
    - failhard: True
    - require:
      - {{ last }}
{%-       set last = 'nova-orch-canary' %}
{%-     endif %}

# Salt says "States ran successfully" when allow_fail let a minion fail:
# this step fails naming each failed minion and its step
nova-orch-report:
  nova_orch.report:
    - name: nova rollout
    - require:
      - {{ last }}
{%-   endif %}
{%- endif %}
