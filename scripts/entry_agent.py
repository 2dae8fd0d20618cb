from kubensage_agent.cli import main

main()
