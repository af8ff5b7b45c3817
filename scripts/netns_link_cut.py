#!/usr/bin/env python3
"""Runs a site's `tessera client` and cuts its link while it uploads (scripts/netns_study.sh).

Usage: netns_link_cut.py LOG ROUND SECONDS WAN_NS PORT -- COMMAND...

Runs COMMAND (the site's `ip netns exec ... tessera client ...`), copying its output to LOG. When the client logs
"round ROUND: training", its link is cut: the client is paused (SIGSTOP) for the few milliseconds `ip -n WAN_NS link
set PORT down` takes, so the cut always comes before the end of its training, however loaded the machine; then it
goes on, and the upload that follows its "round ROUND: done" line starts on a dead link. SECONDS after that line the
link is brought back. The times (Unix seconds) are written to LOG as lines "netns-cut down T" and "netns-cut up T".
ROUND 0: no cut. Exits with the client's status. Standard library only.
"""
import os
import signal
import subprocess
import sys
import threading
import time


def main():
    if len(sys.argv) < 7 or sys.argv[6] != "--":
        sys.exit(__doc__.strip().splitlines()[2])
    log_path, cut_round, seconds, wan, port = sys.argv[1:6]
    command = sys.argv[7:]
    cut_round, seconds = int(cut_round), float(seconds)
    training = f"round {cut_round}: training".encode()
    done = f"round {cut_round}: done".encode()

    def link(state):
        subprocess.run(["ip", "-n", wan, "link", "set", port, state], check=True)

    with open(log_path, "ab", buffering=0) as log:
        client = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        signal.signal(signal.SIGTERM, lambda *_: client.terminate())  # stopped with the study: stop the client too
        state = "before" if cut_round > 0 else "none"
        restore = None
        for line in client.stdout:
            if state == "before" and training in line:
                os.kill(client.pid, signal.SIGSTOP)
                try:
                    link("down")
                finally:
                    os.kill(client.pid, signal.SIGCONT)
                log.write(line + f"netns-cut down {time.time():.6f}\n".encode())
                state = "down"
                continue
            log.write(line)
            if state == "down" and done in line:
                state = "after"

                def bring_up():
                    link("up")
                    log.write(f"netns-cut up {time.time():.6f}\n".encode())

                restore = threading.Timer(seconds, bring_up)
                restore.start()
        if restore:
            restore.join()
        elif state == "down":  # the client ended before training the round: the link still comes back
            link("up")
        return client.wait()


if __name__ == "__main__":
    sys.exit(main())
