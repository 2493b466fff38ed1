DEMO_PASSWORD = "Demo-2026-Szkj!"
DEMO_LOGINS_NOTE = ""
def load(seed=0):
    return []
