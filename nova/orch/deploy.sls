{#- salt-run state.orchestrate nova.orch.deploy
    A whole fleet in the guide's order; every target comes from pillar
    nova:fleet (the master's pillar: make it the same data the minions see).
    Each step requires the previous one and is failhard: a failed step stops
    the rollout. Rendered on the master, so plain Jinja only (the formula's
    _modules reach the minions in the first step). -#}
{%- set fleet = salt['pillar.get']('nova:fleet', {}) %}
{%- set controllers = fleet.get('controllers') or [] %}
{%- set computes = fleet.get('computes') or [] %}
{#- same rule as nova_formula.sync_conductor(): named, else first conductor by id -#}
{%- set conductors = fleet.get('conductors') or controllers %}
{%- set sync = fleet.get('sync_conductor') or (conductors|sort|first if conductors else none) %}
{%- set database = fleet.get('database') or sync %}
{%- set identity = fleet.get('identity') or sync %}
{%- set everyone = (controllers + computes + [database, identity])|select|unique|list %}
{%- set discover = fleet.get('discover') or {} %}

{%- if not sync or not computes %}
nova-orch-fleet:
  test.fail_without_changes:
    - name: nova:fleet
    - comment: "nova:fleet needs controllers (or conductors / sync_conductor) and computes: minion ids"
    - failhard: True
{%- else %}

nova-orch-sync-modules:
  salt.function:
    - name: saltutil.sync_all
    - tgt: {{ everyone|json }}
    - tgt_type: list
    - expect_minions: True
    - failhard: True

nova-orch-database:
  salt.state:
    - tgt: {{ database|json }}
    - tgt_type: list
    - sls: nova.database
    - failhard: True
    - require:
      - nova-orch-sync-modules

nova-orch-identity:
  salt.state:
    - tgt: {{ identity|json }}
    - tgt_type: list
    - sls: nova.identity
    - failhard: True
    - require:
      - nova-orch-database

nova-orch-config:
  salt.state:
    - tgt: {{ (controllers + computes)|unique|list|json }}
    - tgt_type: list
    - sls: nova.config
    - failhard: True
    - require:
      - nova-orch-identity

nova-orch-db-sync:
  salt.state:
    - tgt: {{ sync|json }}
    - tgt_type: list
    - sls: nova.db_sync
    - failhard: True
    - require:
      - nova-orch-config

nova-orch-controllers:
  salt.state:
    - tgt: {{ controllers|json }}
    - tgt_type: list
    - sls: nova
    - failhard: True
    - require:
      - nova-orch-db-sync

nova-orch-computes:
  salt.state:
    - tgt: {{ computes|json }}
    - tgt_type: list
    - sls: nova
    - batch: {{ fleet.get('batch', 1)|int }}
    - failhard: True
    - require:
      - nova-orch-controllers

nova-orch-discover:
  salt.state:
    - tgt: {{ sync|json }}
    - tgt_type: list
    - sls: nova.discover
    - pillar:
        nova:
          fleet:
            discover:
              expect: {{ computes|length }}   # a count: minion ids need not be the hosts nova-compute registers; discover.sls names the missing ones from fleet:computes
    - failhard: True
    - require:
      - nova-orch-computes
{%- endif %}
