#!/bin/sh
# /init of the lab registration image: bring the machine up, run the registration agent, power off.
. /etc/metal/bring-up.sh
echo "metal-lab: registration image up; running the agent"
METAL_AGENT_CONSOLE= sh /usr/bin/metal-agent
echo "metal-lab: the agent exited with status $?; powering off"
poweroff -f
