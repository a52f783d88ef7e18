{#- Migration trust among the computes: the nova user's SSH key; its public
    key and this host's SSH host keys published through the Salt mine; the
    other computes' keys (read from the mine) in the nova user's
    authorized_keys and known_hosts (host-key checking stays on); sshd
    serving the sftp subsystem (OpenSSH 9's scp needs it). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}
{%- set plan = nova.plan.get('migration', {}) %}

include:
  - {{ tplroot }}.validate
{%- for sls in nova.plan.needs.get('migration', []) %}
  - {{ sls }}
{%- endfor %}
{%- for state in plan.get('sshd_pkg', []) %}

{{ state.id }}:
  pkg.installed:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('sftp', []) %}

{{ state.id }}:
  openstack_ssh.sftp_served:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('sshd', []) %}

{{ state.id }}:
  service.running:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('key', []) %}

{{ state.id }}:
  openstack_ssh.key_present:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('published', []) %}

{{ state.id }}:
  openstack_ssh.published:
    {{- args(state) }}
{%- endfor %}
{%- for state in plan.get('trust', []) %}

{{ state.id }}:
  openstack_ssh.trust_present:
    {{- args(state) }}
{%- endfor %}
