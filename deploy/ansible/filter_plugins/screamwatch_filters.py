"""Filters for the Screamwatch playbook.

screamwatch_scrypt: the cloud's `scrypt$N$r$p$salt$hash` format (cloud/auth/passwords.ts),
computed on the controller from the same vault password the sensor gets. The salt is derived
from the sensor id and a seed instead of drawn at random so that re-running the playbook
renders the same cloud.yaml and does not restart the broker for nothing; it is still unique
per sensor and per fleet (seed = the cloud's inventory name by default).
"""

import base64
import hashlib

from ansible.errors import AnsibleFilterError

# Same cost as cloud/auth/passwords.ts: 2^15, r=8, p=1, 32-byte key.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
KEY_LEN = 32


def screamwatch_scrypt(password, sensor_id, seed=""):
    if not isinstance(password, str) or not password:
        raise AnsibleFilterError(f"screamwatch_scrypt: empty MQTT password for sensor {sensor_id!r}")
    salt = hashlib.sha256(f"screamwatch-mqtt:{seed}:{sensor_id}".encode()).digest()[:16]
    key = hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=256 * SCRYPT_N * SCRYPT_R + 1024 * 1024,
        dklen=KEY_LEN,
    )
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt)}${b64(key)}"


def screamwatch_restart_keys(before, after):
    """What changed in cloud.yaml beyond what the bridge takes on SIGHUP (cloud/app.ts reload():
    the `sensors` list and `mqtt.sensors`, the broker credentials): the keys that need a restart,
    as the bridge names them (`web`, `mqtt.port`, ...). ["*"] when there was no config before."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return ["*"]
    keys = []
    for key in list(after) + [k for k in before if k not in after]:
        if key == "sensors":
            continue
        if key == "mqtt" and isinstance(before.get(key), dict) and isinstance(after.get(key), dict):
            b, a = before[key], after[key]
            for sub in list(a) + [k for k in b if k not in a]:
                if sub != "sensors" and b.get(sub) != a.get(sub):
                    keys.append(f"mqtt.{sub}")
            continue
        if before.get(key) != after.get(key):
            keys.append(key)
    return keys


class FilterModule:
    def filters(self):
        return {
            "screamwatch_scrypt": screamwatch_scrypt,
            "screamwatch_restart_keys": screamwatch_restart_keys,
        }
