"""Nova's API policy: the rule names the installed Nova knows.

They come from its policy sample (Debian ships one in nova-common; the
formula's ``lookup:policy_sample``), read as text, so no interpreter starts.
Without a sample, ``oslopolicy-sample-generator --namespace nova`` prints one
(a Python start-up of a few seconds: the formula asks only when policy.yaml
would change).
"""
import os
import shutil

from salt.exceptions import CommandExecutionError

__virtualname__ = "nova_policy"


def __virtual__():
    if "nova_dialects.policy_rule_names" not in __utils__:
        return (False, "nova_policy: the formula's _utils are not loaded (run saltutil.sync_all)")
    return __virtualname__


def _generated():
    generator = shutil.which("oslopolicy-sample-generator")
    if not generator:
        raise CommandExecutionError("cannot list Nova's policy rules: no policy sample is "
                                    "named (lookup:policy_sample) and "
                                    "oslopolicy-sample-generator is not installed")
    res = __salt__["cmd.run_all"]([generator, "--namespace", "nova", "--format", "yaml"],
                                  python_shell=False, output_loglevel="quiet",
                                  ignore_retcode=True)
    if res["retcode"] != 0:
        raise CommandExecutionError("oslopolicy-sample-generator --namespace nova failed "
                                    f"(exit {res['retcode']}): is Nova installed?")
    return res["stdout"]


def known_rules(sample=None):
    """The rule names of the installed Nova's policy defaults (deprecated
    names included), from ``sample`` (a policy sample file) or, without one,
    from oslopolicy-sample-generator.

    CLI Example:

    .. code-block:: bash

        salt ctl1 nova_policy.known_rules /usr/share/nova-common/policy.yaml.example
    """
    if sample:
        if not os.path.exists(sample):
            raise CommandExecutionError(f"cannot list Nova's policy rules: {sample} is missing "
                                        "(is the nova-common package installed?)")
        with open(sample, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    else:
        text = _generated()
    return __utils__["nova_dialects.policy_rule_names"](text)
