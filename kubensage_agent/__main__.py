from kubensage_agent.entry import main

main()
