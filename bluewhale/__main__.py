from bluewhale.app import main

main()
